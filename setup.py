"""Packaging for llm-tf: the TensorFlow/Keras package for the whole life of a language model."""

import pathlib

import setuptools

_HERE = pathlib.Path(__file__).parent

# One TensorFlow stack for every package: TF is pinned to 2.20 because
# tf-models-official 2.20 requires it; every TF-family package follows it.
INSTALL_REQUIRES = [
    "tensorflow~=2.20.0",
    "tensorflow-text~=2.20.0",
    "keras-hub~=0.32.0",
    # keras-hub reads Hugging Face model directories' weights with it (task.init_preset, llm_prepare --preset).
    "safetensors>=0.4",
    "tf-models-official~=2.20.0",
    "tensorflow-serving-api~=2.20.0",
    "tensorflow-datasets>=4.9,<5",
    "ai-edge-litert>=2.0,<3",
    "sentencepiece>=0.2,<0.3",
    "seqeval>=1.2,<2",
    "absl-py>=1.4",
    "pyyaml>=6.0",
    "tqdm>=4.66",
    # Charts: prepared data statistics, training curves, evaluation, the TFLite report (Agg backend).
    "matplotlib>=3.8",
    "numpy>=1.26",
]

EXTRAS_REQUIRE = {
    "dev": [
        "pytest>=8",
        "pytest-timeout>=2.3",
        # `ruff check` runs before the tests (scripts/test.sh); pinned so that CI's rule set cannot move under us.
        "ruff==0.17.6",
    ],
    # llm_tf.serving (llm_serve, llm_predict, the pipeline's infra validation): pip install 'llm-tf[serving]'.
    "serving": [
        # Serving: gRPC (TF Serving's API), REST (werkzeug routing on the waitress server), Prometheus metrics.
        "grpcio>=1.60",
        "werkzeug>=3.0",
        "waitress>=3.0,<4",
        "prometheus-client>=0.20",
    ],
    # llm_prepare --runner (Apache Beam: DirectRunner, DataflowRunner, ...): pip install 'llm-tf[beam]'.
    "beam": ["apache-beam>=2.77,<3"],
    # llm_pipeline compile / run_kfp_local (Kubeflow Pipelines v2, Vertex AI Pipelines): pip install 'llm-tf[kfp]'.
    "kfp": ["kfp>=2.17,<3"],
}

CONSOLE_SCRIPTS = [
    "llm_prepare=llm_tf.bin.prepare:run",
    "llm_train=llm_tf.bin.train:run",
    "llm_export=llm_tf.bin.export:run",
    "llm_serve=llm_tf.bin.serve:run",
    "llm_predict=llm_tf.bin.predict:run",
    "llm_serving_config=llm_tf.bin.serving_config:run",
    "llm_quantize=llm_tf.bin.quantize:run",
    "llm_pipeline=llm_tf.bin.pipeline:run",
    "llm_generate=llm_tf.bin.generate:run",
    "llm_transfer_set=llm_tf.bin.transfer_set:run",
]

setuptools.setup(
    name="llm-tf",
    version="0.1.0",
    description=(
        "Prepare data, train, compress, export, serve and ship language models "
        "with TensorFlow and Keras 3."
    ),
    long_description=(_HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    # 3.12: the pinned stack installs from wheels and tests/bin passes (checked with 3.12.1).
    python_requires=">=3.11,<3.13",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
    ],
    packages=setuptools.find_packages(include=["llm_tf", "llm_tf.*"]),
    package_data={"llm_tf": ["py.typed"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
)
