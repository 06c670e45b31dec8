"""The importer core both front ends share (onnx2tnn, tflite2tnn).

A front end reads its file into a `graph.Graph` of plain nodes with numpy constants and static
shapes, then maps each node to TNN layers through a `context.Context`. What does not depend on
the source format lives here: the graph under construction and its rewrites (`folding`,
`fusions`), TNN's padding rules (`spatial`), the TNN-side layer builders (`builders`), the
registry of op converters and the assembly of the Net (`build`), and the command-line helpers
(`cli`). Nothing here imports onnx or flatbuffers.
"""
