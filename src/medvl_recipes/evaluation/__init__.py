"""Evaluation: metrics (BLEU, chrF, ROUGE-L, embedding similarity, retrieval, finding F1), bootstrap, runs, reports."""
