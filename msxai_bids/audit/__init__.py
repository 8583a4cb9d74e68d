"""The explanation audit: does a heatmap depend on the model, find the truth, and matter?

One test per module, as pure functions on arrays and networks so that each is checked on cases
whose answer is known by hand: :mod:`.randomisation` (Adebayo et al. 2018), :mod:`.localisation`
(relevance mass and rank accuracy, Arras et al. 2022) and :mod:`.faithfulness` (region
perturbation, Samek et al. 2017); :mod:`.verdicts` turns their numbers into the audit table.
"""
