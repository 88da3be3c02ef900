"""Search under a budget: a per-layer policy (channel ratio per group, float fallback).

Measured per-group sensitivity and deployed cost (:mod:`edgeslim.search.candidates`),
an exact MILP (:mod:`edgeslim.search.milp`), then apply, re-measure, tighten
(:mod:`edgeslim.search.budget`). The recipe stage is ``search``.
"""

from edgeslim.search.budget import SearchConfig, SearchResult, search
from edgeslim.search.candidates import CandidateConfig
from edgeslim.search.deploy import Deployment
from edgeslim.search.milp import Cost, Problem, Solution, evaluate, most_compressed, solve

__all__ = [
    "CandidateConfig",
    "Cost",
    "Deployment",
    "Problem",
    "SearchConfig",
    "SearchResult",
    "Solution",
    "evaluate",
    "most_compressed",
    "search",
    "solve",
]
