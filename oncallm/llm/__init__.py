"""LLM reasoning: providers, prompts, redaction, budgets and the grounding guard.

The deterministic triage comes first and always stands on its own; this package only
reads its result and context, asks a model to rank and explain, and checks every claim the
model makes against the evidence before it is shown. Nothing here runs when
``llm.provider`` is ``none``.
"""
