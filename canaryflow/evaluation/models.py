"""The evaluation's inputs and results: ids and numbers only (safe for workflow histories and the sandbox)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from canaryflow.domain.evaluation import VersionStats, format_table


class EvalInput(BaseModel):
    """An evaluation request (what ``canaryflow eval`` sends to the workflow)."""

    model_config = ConfigDict(extra="forbid")

    config_key: str
    versions: list[int] = Field(min_length=1)
    stable_version: int | None = Field(default=None, description="reference for agreement (default: stable)")
    sample: int | None = Field(default=None, ge=1, le=100_000)
    dataset: str | None = Field(default=None, description="path of a JSONL file readable by the worker")
    chunk: int = Field(default=25, ge=1, le=1000)
    concurrency: int = Field(default=4, ge=1, le=64)
    rate_per_s: float = Field(default=20.0, gt=0)
    timeout_s: float = Field(default=30.0, gt=0)
    db_url: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> EvalInput:
        if self.sample is not None and self.dataset is not None:
            raise ValueError("give either --sample N (recorded traffic) or --dataset FILE.jsonl, not both")
        if self.sample is None and self.dataset is None:
            self.sample = 100
        return self


class EvalPlan(BaseModel):
    """The fixed list of items: traffic-log ids, or the dataset's row count."""

    stable_version: int
    versions: list[int]
    item_ids: list[str] = Field(default_factory=list)
    dataset_rows: int = 0

    @property
    def size(self) -> int:
        """How many items the evaluation replays."""
        return self.dataset_rows if self.dataset_rows else len(self.item_ids)


class EvalChunk(BaseModel):
    """Items ``[start, end)`` of a plan."""

    input: EvalInput
    plan: EvalPlan
    start: int
    end: int


class EvalResult(BaseModel):
    """Per-version numbers of a whole evaluation."""

    config_key: str
    stable_version: int
    items: int
    stats: list[VersionStats]

    def rows(self) -> list[dict[str, float | int | None]]:
        """One summary per version (see :meth:`VersionStats.summary`)."""
        return [s.summary() for s in self.stats]

    def table(self) -> str:
        """The side-by-side table."""
        title = (f"{self.config_key}: {self.items} items, agreement measured against v{self.stable_version}")
        return title + "\n" + format_table(self.rows())


def merge(total: list[VersionStats] | None, part: list[VersionStats]) -> list[VersionStats]:
    """Add a chunk's numbers to the running totals (same version order)."""
    if total is None:
        return [p.model_copy(deep=True) for p in part]
    for t, p in zip(total, part, strict=True):
        t.merge(p)
    return total


__all__ = ["EvalChunk", "EvalInput", "EvalPlan", "EvalResult", "merge"]
