"""Train, register and document a churn model with the plain mlflow client
against a running `keel server`, then record its deployment in the lineage
graph and write its model card.

    keel server &                                  # or any Keel URL
    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python examples/models/churn_model.py
    keel models card churn@champion --server http://127.0.0.1:5000
    keel models lineage churn@champion --both --format svg -o churn-lineage.svg --server http://127.0.0.1:5000

Needs mlflow, scikit-learn, pandas and requests.
"""

import os

import mlflow
import numpy as np
import pandas as pd
import requests
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split

uri = os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
mlflow.set_tracking_uri(uri)
mlflow.set_experiment("churn")

rng = np.random.default_rng(7)
n = 2000
frame = pd.DataFrame({
    "tenure_months": rng.integers(1, 72, n).astype(float),
    "monthly_spend": rng.gamma(4.0, 12.0, n),
    "support_tickets": rng.poisson(1.2, n).astype(float),
})
risk = -0.05 * frame.tenure_months + 0.02 * frame.monthly_spend + 0.6 * frame.support_tickets
frame["churned"] = (risk + rng.normal(0, 1, n) > 0.5).astype(int)
x_train, x_test, y_train, y_test = train_test_split(
    frame.drop(columns="churned"), frame.churned, test_size=0.25, random_state=7)

with mlflow.start_run(run_name="train-churn-lr") as run:
    dataset = mlflow.data.from_pandas(frame, source="s3://lake/churn/events-2026-11.parquet",
                                      name="churn-events", targets="churned")
    mlflow.log_input(dataset, context="training")
    params = {"C": 0.5, "max_iter": 500}
    mlflow.log_params(params)
    model = LogisticRegression(**params).fit(x_train, y_train)
    proba = model.predict_proba(x_test)[:, 1]
    mlflow.log_metrics({"auc": roc_auc_score(y_test, proba),
                        "accuracy": accuracy_score(y_test, model.predict(x_test))})
    info = mlflow.sklearn.log_model(model, name="model", input_example=x_test.head(3),
                                    registered_model_name="churn")

client = MlflowClient()
version = info.registered_model_version
client.set_registered_model_alias("churn", "champion", version)

v1 = uri.rstrip("/") + "/v1"
who = {"X-Keel-User": os.environ.get("USER", "anonymous")}
requests.post(f"{v1}/lineage", json={
    "nodes": [{"kind": "deployment", "id": "churn-prod", "attrs": {"endpoint": "/v2/models/churn", "traffic": 100}}],
    "edges": [{"from": f"model_version:churn/{version}", "to": "deployment:churn-prod", "relation": "deployed_as"}],
}, timeout=30).raise_for_status()
requests.patch(f"{v1}/models/churn/versions/{version}/card", json={
    "intended_use": "Rank consumer accounts by the risk of cancelling within 30 days, for the retention team's weekly call list.",
    "out_of_scope_use": "Business accounts, pricing decisions, anything automated without a person in the loop.",
    "limitations": "Trained on one month of synthetic events; tenure dominates, so new accounts are ranked on spend and tickets alone.",
    "fairness": "No protected attributes are used as features; per-segment error rates are checked by the quality suite before promotion.",
    "owners": ["retention-ml@example.com"],
}, headers=who, timeout=30).raise_for_status()
print(f"registered churn version {version} as @champion from run {run.info.run_id}")
