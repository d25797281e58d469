"""The numeric core: a mixed model as a penalized least-squares problem.

- ``_block_types``: the types of the blocks of the Cholesky factor L and their
  operations (start here);
- ``_blocks``: sparse block storage and the precomputed products between blocks;
- ``_lmm``: :class:`LMMProblem`, the linear mixed model (owns theta and L), with
  two other layouts of its factorization: ``_dense`` for small problems (the whole
  system as one dense block) and ``_sparse`` for crossed terms whose levels meet
  rarely (the random effects eliminated in levels, then a dense tail);
- ``_glmm``: the generalized model by PIRLS around an ``LMMProblem``;
- ``_reterm``, ``_scaling``, ``_start``, ``_families``, ``_predictive``: random-effects
  terms, internal centring and scaling, starting values, families and links, and
  predictive densities.
"""
