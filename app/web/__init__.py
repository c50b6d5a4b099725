"""The web tier: the console (``belegsync web``) and the HTTP plumbing it shares with the
webhook receiver (uvicorn in a thread, ``server``).
"""
