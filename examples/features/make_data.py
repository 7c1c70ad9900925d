"""Writes the example feature repo's data: 30 days of activity events for
1,000 users (with same-time corrections told apart by `created`), a user
profile table, and 5,000 labelled entity rows. Needs numpy, pandas, pyarrow.

    python examples/features/make_data.py examples/features
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
(out / "feature_repo" / "data").mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(7)
t0 = pd.Timestamp("2026-01-01", tz="UTC")
n = 200_000
events = pd.DataFrame(
    {
        "user_id": rng.integers(0, 1_000, n),
        "event_timestamp": t0 + pd.to_timedelta(rng.integers(0, 30 * 86_400, n), unit="s"),
        "clicks": rng.integers(0, 20, n),
        "spend": rng.gamma(2.0, 10.0, n).round(2),
    }
)
events["created"] = events["event_timestamp"] + pd.to_timedelta(rng.integers(0, 600, n), unit="s")
events.to_parquet(out / "feature_repo" / "data" / "user_activity.parquet", index=False)
profile = pd.DataFrame(
    {
        "user_id": np.arange(1_000),
        "updated_at": t0 - pd.Timedelta(days=1),
        "age": rng.integers(18, 80, 1_000).astype("int32"),
    }
)
profile.to_parquet(out / "feature_repo" / "data" / "user_profile.parquet", index=False)
entities = pd.DataFrame(
    {
        "user_id": rng.integers(0, 1_100, 5_000),
        "event_timestamp": t0 + pd.to_timedelta(rng.integers(0, 31 * 86_400, 5_000), unit="s"),
        "churned": rng.integers(0, 2, 5_000),
    }
)
entities.to_parquet(out / "entities.parquet", index=False)
