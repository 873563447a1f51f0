"""Records → the tables papers print (harmonic means, transfer averages), beside the published numbers."""
