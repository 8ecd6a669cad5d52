"""GourmetGram REST API (lab step 4e): users, uploads, views, comments, flags, health.

Every acknowledged write stores its Kafka event in the transactional outbox (same
transaction as the row it reports); :mod:`gourmetgram.api.relay` publishes the outbox.
"""
