"""report.report_html: accuracy, escaped class names, confusion counts, per-class scores; the no-CV case."""

import re

import numpy as np

from geoembed.analysis.report import report_html

NAMES = ["<water>", 'forest & "trees"', "urban"]


def hand_result():
    # truth/predicted counted by hand: rows = labelled class
    confusion = np.array([[7, 2, 0], [1, 5, 3], [0, 0, 4]])
    tp = np.array([7.0, 5.0, 4.0])
    precision = tp / np.array([8.0, 7.0, 7.0])
    recall = tp / np.array([9.0, 9.0, 4.0])
    f1 = 2 * precision * recall / (precision + recall)
    return {
        "accuracy": 16 / 22,
        "confusion": confusion,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": confusion.sum(axis=1),
    }


def cells(page):
    return re.findall(r"<td[^>]*>([^<]*)</td>", page)


def test_report_contains_accuracy_names_confusion_and_scores():
    result = hand_result()
    page = report_html("Training <report>", NAMES, [9, 9, 4], "random_forest", result, "5 folds of 1 km blocks")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "72.7 %" in page  # 16 / 22
    assert "Training &lt;report&gt;" in page and "<report>" not in page
    assert "&lt;water&gt;" in page and "<water>" not in page
    assert "forest &amp; &quot;trees&quot;" in page
    assert "random_forest" in page and "5 folds of 1 km blocks" in page
    matrix = re.search(r"Confusion matrix.*?</table>", page, re.S).group(0)
    assert [int(v) for v in cells(matrix)] == result["confusion"].ravel().tolist()
    per_class = page[page.index("Per class") :]
    rows = re.findall(r"<tr>(.*?)</tr>", per_class, re.S)[1:]
    assert len(rows) == 3
    for i, row in enumerate(rows):
        values = cells(row)
        assert values[0] == ["&lt;water&gt;", "forest &amp; &quot;trees&quot;", "urban"][i]
        assert int(values[1]) == [9, 9, 4][i]
        expected = [result["precision"][i], result["recall"][i], result["f1"][i]]
        assert [float(v) for v in values[2:5]] == [round(v, 3) for v in expected]
    assert f"{2 * (5 / 7) * (5 / 9) / (5 / 7 + 5 / 9):.3f}" in page  # F1 of the second class: 0.625
    assert "Total samples: 22." in page


def test_report_without_cross_validation():
    page = report_html("t", ["a", "<b>"], [3, 4], "nearest_centroid", None, "one block")
    assert "Cross-validation was not possible" in page
    assert "Overall accuracy" not in page and "Confusion matrix" not in page and "F1" not in page
    assert "&lt;b&gt;" in page and "<b>" not in page.replace("<b>nearest_centroid</b>", "")
    assert "Total samples: 7." in page
    per_class = page[page.index("Per class") :]
    rows = re.findall(r"<tr>(.*?)</tr>", per_class, re.S)[1:]
    assert [cells(r) for r in rows] == [["a", "3"], ["&lt;b&gt;", "4"]]
