"""The stages of a run, each entered from one ``run`` function that the command line calls.

``preprocessing`` executes the participant-level Nipype graph, ``explanation`` predicts and
explains preprocessed images, ``training`` trains and evaluates the models of the group level.
Each takes a small frozen plan built from the options by :mod:`msxai_bids.cli.plans`.
"""
