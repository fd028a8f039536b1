"""Sound and pictures: FluidSynth rendering, loudness, the piano roll."""
