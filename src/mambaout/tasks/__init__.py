"""Tasks on the one engine (:mod:`mambaout.engine`): each supplies build, train step and evaluate.

* :mod:`.classification` -- image classification (ImageFolder, Fashion-MNIST, synthetic);
* :mod:`.dense` -- detection (Mask R-CNN), segmentation (UperNet) and their multi-task combination.
"""
