"""Voices: speech found and given a random pseudo-speaker, so that it no longer names who spoke."""
