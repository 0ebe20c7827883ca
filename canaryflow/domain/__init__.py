"""Pure decisions: config and plan models, targeting, resolution, the stage machine, the judge.

Nothing here does I/O or imports temporalio, sqlmodel, httpx, openai, anthropic or prometheus clients.
"""
