"""Building blocks of the group level: which images, the CNN trials, the result tables."""
