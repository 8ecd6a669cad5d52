"""Data generator (lab step 4): simulated GourmetGram users driving the REST API."""
