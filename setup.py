"""ament_python package setup for neural_ae."""
from glob import glob

from setuptools import find_packages, setup

package_name = 'neural_ae'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.xml')),
        ('share/' + package_name + '/config/sensors', glob('config/sensors/*.yaml')),
        ('share/' + package_name + '/models', glob('models/*')),
    ],
    package_data={'neural_ae': ['data/*.yaml']},
    include_package_data=True,
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='neural_ae developers',
    maintainer_email='neural-ae@example.com',
    description='Learned camera auto-exposure for object detection (ROS 2).',
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'neural-ae = neural_ae.cli:main',
            'auto_exposure_node = neural_ae.nodes.auto_exposure_node:main',
            'camera_sim_node = neural_ae.nodes.camera_sim_node:main',
            'exposure_monitor_node = neural_ae.nodes.exposure_monitor_node:main',
            'exposure_correction_node = neural_ae.nodes.exposure_correction_node:main',
            'vehicle = neural_ae.nodes.vehicle:main',
        ],
    },
)
