"""Ab initio training data: direction-constrained non-collinear GKS with PySCF
(:mod:`~ase_hamgnn.data.pyscf.gks`) and the Fe3 cluster dataset generator
(:mod:`~ase_hamgnn.data.pyscf.dataset`).  PySCF is optional and imported on first use."""
