"""The napari dock widget: pick a bioimage.io package, see its post-processor and params, segment a layer.

Prediction runs in a worker thread (:mod:`napari.qt.threading`) through :func:`runner.napari._run.segment`,
i.e. ``runner predict``'s own function; the tiles done fill the progress bar and the instances arrive as a
labels layer. Problems (a layer that does not fit the package, a bad param) are shown in the widget; a
package that can only run its own Python code runs only once "Trust this package's Python code" is ticked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from runner.errors import UserError

if TYPE_CHECKING:
    import napari

    from runner.inference.package import Package
    from runner.napari._run import PackageView, Segmentation


class PredictWidget(QWidget):
    """Segment the chosen image layer with a bioimage.io package (see the module docstring)."""

    run_finished = Signal(str)
    """Emitted with the status message when a run ends (instances added, or why not)."""
    _tiles = Signal(int, int)

    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.package: Package | None = None
        self.view: PackageView | None = None
        self._worker: Any = None
        self._param_edits: dict[str, tuple[QLineEdit, str]] = {}

        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("model.zip, package folder or rdf.yaml")
        browse, load = QPushButton("Browse…"), QPushButton("Load")
        browse.clicked.connect(self._browse)
        load.clicked.connect(self._load_typed)
        self.path_edit.returnPressed.connect(self._load_typed)
        row = QHBoxLayout()
        row.addWidget(self.path_edit)
        row.addWidget(browse)
        row.addWidget(load)

        self.info = QLabel("No package loaded.")
        self.info.setWordWrap(True)
        self.params_box = QGroupBox("Post-processor")
        self.params_form = QFormLayout(self.params_box)
        self.layer_combo = QComboBox()
        self.tta = QCheckBox("Test-time augmentation (mirrored inputs, slower)")
        self.trust = QCheckBox("Trust this package's Python code")
        self.trust.setToolTip(
            "Some packages (pytorch_state_dict weights) can only run their own Python source."
        )
        self.run_button = QPushButton("Segment")
        self.run_button.clicked.connect(self.run)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.message = QLabel("")
        self.message.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("bioimage.io package"))
        layout.addLayout(row)
        layout.addWidget(self.info)
        layout.addWidget(self.params_box)
        form = QFormLayout()
        form.addRow("image layer", self.layer_combo)
        layout.addLayout(form)
        layout.addWidget(self.tta)
        layout.addWidget(self.trust)
        layout.addWidget(self.run_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.message)
        layout.addStretch(1)

        self._tiles.connect(self._on_tiles)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()

    # ------------------------------------------------------------------------------------------- package
    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "bioimage.io package", "", "bioimage.io package (*.zip *.yaml *.yml);;All files (*)"
        )
        if path:
            self.path_edit.setText(path)
            self.load(path)

    def _load_typed(self) -> None:
        self.load(self.path_edit.text())

    def load(self, path: str) -> bool:
        """Load a package (zip, folder or rdf) and show its input, post-processor and params."""
        from runner.inference.package import load_package
        from runner.napari._run import describe_package

        self.path_edit.setText(path)
        try:
            package = load_package(path.strip())
            view = describe_package(package)
        except UserError as exc:
            self._say(str(exc), error=True)
            return False
        if self.package is not None:
            self.package.close()
        self.package, self.view = package, view
        channels = view.n_channels if view.n_channels is not None else "any"
        self.info.setText(
            f"<b>{view.name}</b>: {view.ndim}D input ({channels} channel(s), axes {view.axes}); "
            f"post-processor <b>{view.postprocessor or 'none declared'}</b>"
        )
        self._show_params(view)
        self.tta.setChecked(view.tta)
        self.trust.setChecked(False)
        if view.trust_needed:
            self._say(
                "This package can only run its own Python code (pytorch_state_dict weights). Tick "
                "'Trust this package's Python code' only if you trust where it comes from.",
                error=True,
            )
        else:
            self._say("Package loaded.")
        return True

    def _show_params(self, view: PackageView) -> None:
        while self.params_form.rowCount():
            self.params_form.removeRow(0)
        self._param_edits.clear()
        self.params_box.setTitle(f"Post-processor: {view.postprocessor or 'none declared'}")
        for p in view.params:
            edit = QLineEdit(p.value)
            edit.setToolTip(p.doc)
            label = QLabel(f"{p.name} <span style='color:gray'>{p.allowed}</span>")
            label.setToolTip(p.doc)
            self.params_form.addRow(label, edit)
            self._param_edits[p.name] = (edit, p.value)

    def params(self) -> dict[str, Any]:
        """The params the user changed, parsed as ``--param key=value`` is."""
        from runner.parsing import parse_params

        changed = [
            f"{k}={e.text()}" for k, (e, start) in self._param_edits.items() if e.text().strip() != start
        ]
        return parse_params(changed)

    # ----------------------------------------------------------------------------------------------- run
    def _refresh_layers(self, *_: Any) -> None:
        import napari

        current = self.layer_combo.currentText()
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, napari.layers.Image)]
        self.layer_combo.clear()
        self.layer_combo.addItems(names)
        if current in names:
            self.layer_combo.setCurrentText(current)

    def run(self) -> None:
        """Check the inputs, then segment the chosen layer in a worker thread."""
        from napari.qt.threading import create_worker

        from runner.napari._run import segment, to_engine

        if self.package is None or self.view is None:
            return self._done("Load a package first.", error=True)
        if self.view.postprocessor is None:
            return self._done("The package declares no instance post-processor.", error=True)
        name = self.layer_combo.currentText()
        if name not in self.viewer.layers:
            return self._done("Open an image first: there is no image layer.", error=True)
        layer = self.viewer.layers[name]
        if self.view.trust_needed and not self.trust.isChecked():
            return self._done(
                "Not run: this package runs its own Python code. Tick 'Trust this package's Python code' "
                "to allow it.",
                error=True,
            )
        try:
            image = to_engine(layer.data, rgb=bool(getattr(layer, "rgb", False)), view=self.view, layer=name)
            params = self.params()
        except UserError as exc:
            return self._done(str(exc), error=True)
        self.run_button.setEnabled(False)
        self.progress.setRange(0, 0)  # busy until the first tile reports
        self._say(f"Segmenting {name!r}…")
        self._worker = create_worker(
            segment,
            self.package,
            image,
            params=params,
            trust_code=self.trust.isChecked(),
            tta=self.tta.isChecked(),
            on_tiles=self._tiles.emit,
        )
        self._worker.returned.connect(lambda result: self._returned(result, layer))
        self._worker.errored.connect(
            lambda exc: self._done(f"failed: {type(exc).__name__}: {exc}", error=True)
        )
        self._worker.start()
        return None

    def _on_tiles(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)

    def _returned(self, result: Segmentation, layer: Any) -> None:
        if result.labels is None:
            return self._done(result.message, error=True)
        ndim = result.labels.ndim
        self.viewer.add_labels(
            result.labels,
            name=f"{layer.name} instances",
            scale=tuple(layer.scale[-ndim:]),
            translate=tuple(layer.translate[-ndim:]),
        )
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        return self._done(result.message)

    def _done(self, text: str, *, error: bool = False) -> None:
        self.run_button.setEnabled(True)
        if error:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
        self._worker = None
        self._say(text, error=error)
        self.run_finished.emit(text)

    def _say(self, text: str, *, error: bool = False) -> None:
        self.message.setStyleSheet("color: #e04545;" if error else "")
        self.message.setText(text)
