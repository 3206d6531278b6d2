from glob import glob

from setuptools import find_packages, setup

package_name = "tramoe_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=[package_name, f"{package_name}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/launch", glob("launch/*.launch.py")),
        (f"share/{package_name}/config", glob("config/*.yaml") + glob("config/*.rviz")),
        (f"share/{package_name}/config/robot", glob("config/robot/*.yaml")),
        (f"share/{package_name}/config/robot/calibration", glob("config/robot/calibration/*.yaml")),
        (f"share/{package_name}/models", glob("models/*.safetensors") + glob("models/*.md")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="tramoe developers",
    maintainer_email="tramoe@example.org",
    description="Tra-MoE track model and trajectory-guided policy as ROS 2 nodes (LIBERO sim and dual-arm robot)",
    license="MIT",
    entry_points={
        "console_scripts": [
            "tramoe-train-tracks = tramoe_ros.cli.train:main_tracks",
            "tramoe-train-policy = tramoe_ros.cli.train:main_policy",
            "tramoe-bench = tramoe_ros.cli.bench:main",
            "tramoe-smoke-demo = tramoe_ros.cli.smoke_demo:main",
            "tramoe-up = tramoe_ros.cli.up:main",
            "tramoe-demo = tramoe_ros.cli.demo:main",
            "tramoe-collect-libero = tramoe_ros.cli.collect_libero:main",
            "tramoe-import-libero = tramoe_ros.cli.import_libero:main",
            "tramoe-label-tracks = tramoe_ros.cli.label_tracks:main",
            "tramoe-eval-libero = tramoe_ros.cli.eval_libero:main",
            "tramoe-ablate = tramoe_ros.cli.ablate:main",
            "tramoe-calibrate = tramoe_ros.cli.calibrate:main",
            "tramoe-teleop = tramoe_ros.cli.teleop:main",
            "camera_node = tramoe_ros.nodes.start:camera_node",
            "instruction_node = tramoe_ros.nodes.start:instruction_node",
            "track_node = tramoe_ros.nodes.start:track_node",
            "policy_node = tramoe_ros.nodes.start:policy_node",
            "arm_node = tramoe_ros.nodes.start:arm_node",
            "libero_bridge_node = tramoe_ros.nodes.start:libero_bridge_node",
            "recorder_node = tramoe_ros.nodes.start:recorder_node",
        ],
    },
)
