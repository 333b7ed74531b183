"""Evaluation: report generation, metrics (BLEU, ROUGE-L, embedding similarity, retrieval, finding F1), reports."""

from .generation import generate_reports, stream_report
