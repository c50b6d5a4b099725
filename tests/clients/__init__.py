"""Tests of the GMI and Billomat HTTP clients."""
