"""Tests of the Kubernetes dispatcher (``stacksapi.kubernetes``)."""
