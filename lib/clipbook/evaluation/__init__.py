"""Evaluation harnesses shared by notebooks (classification today; retrieval and dense next)."""
