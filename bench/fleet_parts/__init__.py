"""The fleet benchmark's parts (``bench/fleet.py``): kept out of ``bench/*.py`` because
``make bench`` runs every file there as a benchmark."""
