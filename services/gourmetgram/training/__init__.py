"""Training (lab step 7): the large synthetic table, the streaming trainer, and publishing the
artifacts the inference service loads (gourmetgram.common.model_artifacts)."""
