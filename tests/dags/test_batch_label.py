"""The mapped close's UI label fits Airflow's rendered_map_index column (VARCHAR 250).

A batch of 100 funds gave a 500-character label: PostgreSQL refused it and every
batch task failed on the Celery cluster (bench stage d_celery, 200 funds)."""

from __future__ import annotations

from budget_monitor_airflow.periods import MAP_LABEL_MAX, batch_label


def test_short_batch_lists_every_fund() -> None:
    assert batch_label(["/in/2021/F001", "/in/2021/F002/"]) == "F001,F002"


def test_large_batch_label_fits_the_column() -> None:
    batch = [f"/in/2021/fund-{i:04d}" for i in range(100)]
    label = batch_label(batch)
    assert len(label) <= MAP_LABEL_MAX
    assert label == "fund-0000 … fund-0099（共100个）"


def test_absurd_names_still_fit() -> None:
    batch = ["/in/" + "x" * 200, "/in/" + "y" * 200]
    assert len(batch_label(batch)) <= MAP_LABEL_MAX
