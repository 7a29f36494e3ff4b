"""Analyses of trained models and of training itself, one concept per module.

=======================  ===================================================================
``collapse``             neural-collapse measures of label-level embeddings (ABALONE App. F)
``attraction``           per-label attraction / repulsion of a contrastive loss (ABALONE 5.2)
``positives``            the lack of positives in batches and queues (ABALONE 3)
``clustering``           silhouette / Davies–Bouldin over label combinations (ABALONE 5.3)
``retrieval``            label-level retrieval P@k and nearest labels (MulCon Tables 6–7)
``attention``            does a label's attention find its object (MulCon chapter)
``probe``                linear probes on frozen representations (ABALONE, MulCon chapter)
``evaluation``           per-label F1, label buckets, records, validation split (ABALONE)
``compare``              ours vs the paper, paired per-seed differences, data with validation
=======================  ===================================================================

The layer above training: nothing under ``mlcl.data`` / ``losses`` / ``models`` / ``training``
imports from here (``tests/test_layers.py``).
"""

from .attention import attention_localisation
from .attraction import attraction_repulsion, averaged_attraction_repulsion
from .clustering import clustering_scores
from .collapse import collapse_measures
from .compare import load_with_validation, paired_differences, paper_comparison
from .evaluation import label_buckets, per_label_f1, scores_to_records, stratified_validation
from .positives import no_positive_rates
from .probe import AbaloneProbe, abalone_linear_probe, linear_probe_map
from .retrieval import nearest_labels, retrieval_at_k, within_label_retrieval

__all__ = [
    "AbaloneProbe",
    "abalone_linear_probe",
    "attention_localisation",
    "attraction_repulsion",
    "averaged_attraction_repulsion",
    "clustering_scores",
    "collapse_measures",
    "label_buckets",
    "linear_probe_map",
    "load_with_validation",
    "nearest_labels",
    "no_positive_rates",
    "paired_differences",
    "paper_comparison",
    "per_label_f1",
    "retrieval_at_k",
    "scores_to_records",
    "stratified_validation",
    "within_label_retrieval",
]
