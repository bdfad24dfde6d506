"""The HTML accuracy report of geoembed:train, and the page head geoembed:regress's report shares."""

import html

import numpy as np

NO_CV_NOTE = "<p>Cross-validation was not possible: the samples fall in a single spatial block.</p>"


def page_start(title, extra_css=""):
    """The head and title of a self-contained report page (the train and regress reports share its look)."""
    esc = html.escape
    return [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}"
        "td,th{border:1px solid #bbb;padding:3px 6px;text-align:right}th{background:#eee}td.l,th.l{text-align:left}"
        f"{extra_css}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]


def report_html(title, class_names, counts, method, result, folds_note):
    """A self-contained HTML page: method, sample counts, blocked-CV accuracy, confusion matrix, per-class F1."""
    esc = html.escape
    parts = [
        *page_start(title, "td.d{background:#dff0d8}"),
        f"<p>Method: <b>{esc(method)}</b>. {esc(folds_note)}</p>",
    ]
    if result is None:
        parts.append(NO_CV_NOTE)
    else:
        parts.append(f"<h2>Overall accuracy: {100 * result['accuracy']:.1f} %</h2>")
        parts.append("<h3>Confusion matrix (rows: labelled class, columns: predicted class)</h3><table><tr><th class='l'></th>")
        parts.extend(f"<th>{esc(name)}</th>" for name in class_names)
        parts.append("</tr>")
        for i, name in enumerate(class_names):
            cells = "".join(
                f"<td class='{'d' if i == j else ''}'>{int(result['confusion'][i, j])}</td>" for j in range(len(class_names))
            )
            parts.append(f"<tr><th class='l'>{esc(name)}</th>{cells}</tr>")
        parts.append("</table>")
    parts.append("<h3>Per class</h3><table><tr><th class='l'>Class</th><th>Samples</th>")
    if result is not None:
        parts.append("<th>Precision</th><th>Recall</th><th>F1</th>")
    parts.append("</tr>")
    for i, name in enumerate(class_names):
        row = f"<tr><td class='l'>{esc(name)}</td><td>{int(counts[i])}</td>"
        if result is not None:
            row += "".join(f"<td>{result[key][i]:.3f}</td>" for key in ("precision", "recall", "f1"))
        parts.append(row + "</tr>")
    parts.append(f"</table><p>Total samples: {int(np.sum(counts))}.</p></body></html>")
    return "\n".join(parts)
