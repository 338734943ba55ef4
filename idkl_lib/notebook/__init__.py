"""What the notebooks need beyond the core: their parameter rules (:mod:`~idkl_lib.notebook.params`), the run
context shared by notebooks 01-05 (:mod:`~idkl_lib.notebook.context`), notebook 02's baseline
(:mod:`~idkl_lib.notebook.baseline`), notebook 03's checkpoint comparison (:mod:`~idkl_lib.notebook.comparison`) and
the evidence sentences beside the paper's claims (:mod:`~idkl_lib.notebook.evidence`). The notebooks reach them
through :mod:`idkl_lib.workbench`."""
