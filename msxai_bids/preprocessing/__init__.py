"""Pure functions that turn a native FLAIR into the CNN's input grid.

Each module holds one step of the pipeline (reorientation and space handling, brain masking,
bias correction, registration, intensity scaling, lesion handling, quality control); the
Nipype interfaces in ``msxai_bids.interfaces`` wrap them one to one.
"""
