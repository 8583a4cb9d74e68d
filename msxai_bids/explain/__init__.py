"""Explanations of the CNN and their summaries.

``methods`` names the zennit rules (``names`` lists their names without importing zennit),
``rules`` holds msxai's own ε-rule, ``attribution`` runs them on volumes, ``atlases`` puts
label atlases on the CNN grid, ``regions`` sums relevance per atlas region and ``lesions``
measures the share of relevance on lesions.
"""
