"""Data sources and prepared datasets: images (synthetic, IDX, folders, LSUN, torchvision) and text."""
