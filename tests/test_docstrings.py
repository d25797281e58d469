"""The docstrings of every name on the API page agree with the code.

The API pages (docs/api.md, docs/api/*.md) are rendered by mkdocstrings from the numpydoc
docstrings, so a docstring that drifts from its signature is wrong on the site.
Checked here, with ``inspect`` and a small numpydoc section parser rather than
numpydoc's own validator: numpydoc validates the layout but not that a stated
default is the signature's default, which is the drift this guards against.

For every public class, function and method (what the API page shows):

- the Parameters section lists exactly the signature's parameters, in order, one
  entry per parameter (a grouped ``a, b : ...`` entry gets no default on the page);
- each entry has a type; ``default=<value>`` equals the signature's default, a
  None default is written ``optional`` (or ``default=None``), a required
  parameter says neither; a choice set ``{...}`` starts with the default (the
  page shows its first element as the default);
- functions and methods have a Returns section (unless annotated ``-> None``);
- no Sphinx roles (``:class:`...```), which mkdocstrings prints literally;
- the estimators' Attributes sections list exactly the public fitted attributes.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the API reference: an overview page and a page per estimator
API_PAGES = [ROOT / "docs" / "api.md", *sorted((ROOT / "docs" / "api").glob("*.md"))]

# the mkdocstrings filters of mkdocs.yml: members the page does not show
HIDDEN = re.compile(r"^_|^set_|^get_metadata_routing$|^(problem|result|design)_$")
# Implementation details of the estimators that fit sets (they back the report
# and the extractors); not part of the documented interface.
INTERNAL_ATTRIBUTES = {"result_", "design_", "problem_"}
SECTION = re.compile(r"^(?P<name>[A-Z][A-Za-z ]+)\n-{3,}\n", re.M)
ROLE = re.compile(r":(class|func|meth|attr|mod|obj|data|exc|ref|doc):`")


def _api_names() -> list[str]:
    return [n for p in API_PAGES for n in re.findall(r"^::: *([\w.]+)", p.read_text(), flags=re.M)]


def _resolve(path: str):
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


def _documented_objects():
    """(qualified name, object) for everything the API page renders."""
    out = []
    for path in _api_names():
        obj = _resolve(path)
        if inspect.ismodule(obj):
            out.append((path, obj))
            for name in getattr(obj, "__all__", []):
                member = getattr(obj, name)
                if getattr(member, "__module__", "").startswith("sklmixed"):
                    out += _with_members(f"{path}.{name}", member)
            continue
        out += _with_members(path, obj)
    return out


def _with_members(path, obj):
    out = [(path, obj)]
    if inspect.isclass(obj):
        for name, _member in inspect.getmembers(obj):
            if HIDDEN.search(name):
                continue
            # the page shows inherited members too, but scikit-learn's own
            # (score, get_params) are scikit-learn's to document
            owner = next((c for c in obj.__mro__ if name in vars(c)), None)
            if owner is None or not owner.__module__.startswith("sklmixed"):
                continue
            raw = vars(owner)[name]
            if isinstance(raw, property) or inspect.isfunction(raw):
                out.append((f"{path}.{name}", raw))
    return out


def _sections(doc: str) -> dict[str, str]:
    doc = inspect.cleandoc(doc)
    marks = list(SECTION.finditer(doc))
    out = {"": doc[: marks[0].start()] if marks else doc}
    for m, nxt in zip(marks, marks[1:] + [None]):
        out[m.group("name")] = doc[m.end() : nxt.start() if nxt else len(doc)]
    return out


def _entries(section: str) -> list[tuple[str, str]]:
    """(name, type text) for each top-level entry of a numpydoc section."""
    out = []
    for line in section.splitlines():
        if line and not line[0].isspace():
            name, _, kind = line.partition(" : ")
            out.append((name.strip(), kind.strip()))
    return out


def _check_parameters(qualname, func, doc, errors):
    sig = inspect.signature(func)

    def shown(p):  # numpydoc writes *args and **kwargs with their stars
        return {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name

    params = [p for p in sig.parameters.values() if p.name not in ("self", "cls")]
    entries = _entries(_sections(doc).get("Parameters", ""))
    names = [n for n, _ in entries]
    if names != [shown(p) for p in params]:
        errors.append(f"{qualname}: Parameters {names} != signature {[shown(p) for p in params]}")
        return
    for p, (name, kind) in zip(params, entries):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if not kind:
            errors.append(f"{qualname}: parameter {name!r} has no type")
            continue
        stated = re.search(r"default=(.+)$", kind)
        if kind.startswith("{") and p.default is not p.empty:
            # mkdocstrings (griffe) shows a choice set's first element as the
            # default, whatever the signature says
            first = ast.literal_eval(kind[1 : kind.index("}")].split(",")[0].strip())
            if first != p.default:
                errors.append(f"{qualname}: {name!r}: first choice {first!r} is not the default")
        if p.default is p.empty:
            if stated or "optional" in kind:
                errors.append(f"{qualname}: required parameter {name!r} says {kind!r}")
        elif p.default is None:
            if not ("optional" in kind or (stated and stated.group(1) == "None")):
                errors.append(f"{qualname}: {name!r} defaults to None but says {kind!r}")
        elif not stated:
            errors.append(f"{qualname}: {name!r} defaults to {p.default!r}; type says {kind!r}")
        else:
            try:
                value = ast.literal_eval(stated.group(1))
            except (ValueError, SyntaxError):
                value = stated.group(1)
            if value != p.default or type(value) is not type(p.default):
                errors.append(f"{qualname}: {name!r} default {stated.group(1)} != {p.default!r}")


def _docstring_errors():
    errors = []
    for qualname, obj in _documented_objects():
        func = obj.fget if isinstance(obj, property) else obj
        doc = inspect.getdoc(func) if not isinstance(obj, property) else func.__doc__
        if not doc:
            errors.append(f"{qualname}: no docstring")
            continue
        if ROLE.search(doc):
            errors.append(f"{qualname}: Sphinx role in the docstring: {ROLE.search(doc).group(0)}")
        sections = _sections(doc)
        if inspect.ismodule(obj):
            continue
        if inspect.isclass(obj):
            if issubclass(obj, BaseException):
                continue
            _check_parameters(qualname, obj.__init__, doc, errors)
        elif isinstance(obj, property):
            if "Parameters" in sections:
                errors.append(f"{qualname}: a property has no parameters")
        elif callable(obj):
            _check_parameters(qualname, obj, doc, errors)
            returns_none = inspect.signature(obj).return_annotation in (None, "None")
            if "Returns" not in sections and not returns_none:
                errors.append(f"{qualname}: no Returns section")
            for name, kind in _entries(sections.get("Returns", "")):
                if not kind and not name:
                    errors.append(f"{qualname}: a Returns entry without a type")
    return errors


def test_the_api_page_documents_something():
    names = _api_names()
    assert "sklmixed.MixedLMRegressor" in names and "sklmixed.exceptions" in names
    assert len(_documented_objects()) > 40


def test_docstrings_match_signatures():
    errors = _docstring_errors()
    assert not errors, "\n".join(errors)


def _fit(name):
    import sklmixed

    verbagg = sklmixed.load_dataset("verbagg")
    verbagg["y"] = (verbagg["r2"] == "Y").astype(int)
    models = {
        "MixedLMRegressor": ("yield ~ 1 + (1|batch)", {}, sklmixed.load_dataset("dyestuff")),
        "MixedGLMClassifier": ("r2 ~ 1 + anger + (1|item)", {"fast": True}, verbagg),
        "MixedGLMRegressor": (
            "y ~ 1 + anger + (1|item)",
            {"fast": True, "family": "bernoulli"},
            verbagg,
        ),
    }
    formula, kwargs, data = models[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(sklmixed, name)(formula=formula, **kwargs).fit(data)


@pytest.mark.parametrize("name", ["MixedLMRegressor", "MixedGLMClassifier", "MixedGLMRegressor"])
def test_attributes_sections_list_the_fitted_attributes(name):
    model = _fit(name)
    cls = type(model)
    fitted = {a for a in vars(model) if a.endswith("_") and not a.startswith("_")}
    fitted |= {
        n
        for n, v in inspect.getmembers(cls)
        if isinstance(v, property) and n.endswith("_") and not n.startswith("_")
    }
    fitted -= INTERNAL_ATTRIBUTES
    documented = set()
    for name, _ in _entries(_sections(cls.__doc__).get("Attributes", "")):
        documented |= {n.strip() for n in name.split(",")}
    assert documented == fitted, (
        f"undocumented: {sorted(fitted - documented)}; "
        f"documented but not set: {sorted(documented - fitted)}"
    )
