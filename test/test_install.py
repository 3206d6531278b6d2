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


def _requirements(name: str) -> list[str]:
    from tramoe_ros.paths import share_dir

    lines = (share_dir() / name).read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def test_requirements_for_every_install_name_no_ros_package():
    """On a ROS 2 distribution `pip install -r requirements.txt` must not replace the distribution's packages:
    the ROS wheels (and the colcon wheels that go with them) are in requirements-ros-pypi.txt only."""
    ros_like = ("ros-", "colcon-", "catkin-pkg")
    assert not [r for r in _requirements("requirements.txt") if r.startswith(ros_like)]
    assert all(r.startswith(ros_like) for r in _requirements("requirements-ros-pypi.txt"))
    assert "ros-rclpy" in _requirements("requirements-ros-pypi.txt")
