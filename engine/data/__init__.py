"""The training corpus: built from music21's scores, augmented, measured."""
