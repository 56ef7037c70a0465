"""The fast ways of computing what the network computes, each held to its reference.

`TwoLayerNet.predict_proba` (model/network.py) is the reference: the equations as written, on
scaled rows. Beside it, each variant arranges the same arithmetic for one job, and one test
(tests/unit/model/scoring/test_agreement.py) holds every one of them to the reference on the
data set's rows:

| variant | where | for | how it differs |
|---|---|---|---|
| single row | `single_row.SingleRowScorer` | /predict, one-row requests | floats, no NumPy |
| batch | `batch.BatchScorer` | /predict/batch and V2 | the scaler folded into layer 1 |
| coalitions | `model.shapley.ShapleyExplainer` | /explain | 512 coalitions at once |
| trainer | `model.network._Trainer` | training | samples as columns, biases as weights |

Each sums the same terms in another order, so each may differ from the reference in the last
bits (at most about 1e-15 in probability); none differs by more.
"""

from model.scoring.batch import BatchScorer
from model.scoring.single_row import SingleRowScorer

__all__ = ["BatchScorer", "SingleRowScorer"]
