"""Datasets shared by the tasks: ImageFolder (robust to bad files), Fashion-MNIST (IDX files), synthetic."""

from .fashion_mnist import FashionMNIST, default_fashion_mnist_dir  # noqa: F401
from .imagefolder import RobustImageFolder, convert_image, load_image  # noqa: F401
from .synthetic import SyntheticClassification  # noqa: F401
