"""The evaluation set: multi-instrument music rendered from MIDI, with exact beats."""
