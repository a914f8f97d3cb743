"""Environment for every test session, notebooks (nbval) included.

Set here, before any kernel starts: HF_HUB_OFFLINE is read once when huggingface_hub is imported,
and progress bars must stay out of the outputs nbval compares.
"""
import os

os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                   "CLIPBOOK_PROGRESS": "0", "TQDM_DISABLE": "1", "PYTHONHASHSEED": "0"})
