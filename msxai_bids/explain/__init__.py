"""Explanations of the CNN and their summaries.

``methods`` names the zennit rules, ``attribution`` runs them on volumes, ``atlases`` puts label
atlases on the CNN grid, ``regions`` sums relevance per atlas region and ``lesions`` measures the
share of relevance on lesions.
"""
