"""The venv `make install` builds holds one OpenCV distribution: several (opencv-python, -headless, -contrib)
share one cv2 folder, so upgrading or removing one breaks the others."""
from importlib import metadata

OPENCV_DISTRIBUTIONS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python",
                        "opencv-contrib-python-headless")


def test_one_opencv_distribution_provides_cv2():
    installed = []
    for name in OPENCV_DISTRIBUTIONS:
        try:
            installed.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    assert len(installed) == 1, installed

    import cv2

    assert cv2.__version__ == metadata.version(installed[0].split()[0]).rsplit(".", 1)[0]
