"""The forty papers of the workbook: family, title and links, one plain dict keyed by slug.

The slug is the paper's name everywhere (notebook, page, record, `--papers`). The report groups papers by
`family` and links each card to the paper and its official code; a family with no notebook yet is still shown,
with the papers planned in it. Titles, arXiv ids and code repositories are those of the research catalogue
(shared/papers.md); the families are the issues that bring them in (12: training recipes, 13: dense,
14: text side, 15: analyses; adaptation: the first eight). `code` is empty where no official code was found.
"""
from __future__ import annotations

FAMILIES: dict[str, str] = {
    "adaptation": "few-shot, training-free and prompt methods on a frozen or lightly tuned CLIP",
    "training recipes": "how CLIP is pretrained or post-trained: data, captions, losses, distillation",
    "dense": "open-vocabulary segmentation and region-level features",
    "text side": "longer, multilingual or LLM-made text, captioning and text-guided editing",
    "analyses": "robustness, fairness, surveys and dissections of trained models",
}


def _paper(family: str, title: str, arxiv: str, code: str = "") -> dict:
    return {"family": family, "title": title, "paper": f"https://arxiv.org/abs/{arxiv}",
            "code": f"https://github.com/{code}" if code else ""}


PAPERS: dict[str, dict] = {
    "hyp-oc": _paper("analyses", "Hyp-OC: Hyperbolic One Class Classification for Face Anti-Spoofing",
                     "2404.14406", "Kartik-3004/hyp-oc"),
    "clip-dinoiser": _paper("dense", "CLIP-DINOiser: Teaching CLIP a few DINO tricks", "2312.12359",
                            "wysoczanska/clip_dinoiser"),
    "declip": _paper("dense", "Generalized Decoupled Learning for Enhancing Open-Vocabulary Dense Perception",
                     "2508.11256", "xiaomoguhz/DeCLIP"),
    "gda": _paper("adaptation", "A Hard-to-Beat Baseline for Training-free CLIP-based Adaptation", "2402.04087",
                  "mrflogs/ICLR24"),
    "clip-refine": _paper("training recipes",
                          "Post-pre-training for Modality Alignment in Vision-Language Foundation Models",
                          "2504.12717", "yshinya6/clip-refine"),
    "nola": _paper("adaptation", "CLIP meets DINO for Tuning Zero-Shot Classifier using Unlabeled Image Collections",
                   "2411.19346", "fazliimam/NoLA"),
    "long-clip": _paper("text side", "Long-CLIP: Unlocking the Long-Text Capability of CLIP", "2403.15378",
                        "beichenzbc/Long-CLIP"),
    "distill-clip": _paper("training recipes", "Distill CLIP (DCLIP): Enhancing Image-Text Retrieval via "
                           "Cross-Modal Transformer Distillation", "2505.21549", "ChuckDanz/DCLIP"),
    "manufacturing-inspection": _paper(
        "adaptation", "Adapting OpenAI's CLIP Model for Few-Shot Image Inspection in Manufacturing Quality "
        "Control: An Expository Case Study with Multiple Application Examples", "2501.12596", "fmegahed/qe_genai"),
    "ovseg": _paper("dense", "Open-Vocabulary Semantic Segmentation with Mask-adapted CLIP", "2210.04150",
                    "facebookresearch/ov-seg"),
    "grain": _paper("dense", "Grounding Descriptions in Images informs Zero-Shot Visual Recognition",
                    "2412.04429", "shaunak27/grain-clip"),
    "metaclip": _paper("training recipes", "Demystifying CLIP Data", "2309.16671", "facebookresearch/MetaCLIP"),
    "trident": _paper("dense", "Harnessing Vision Foundation Models for High-Performance, Training-Free Open "
                      "Vocabulary Segmentation", "2411.09219", "YuHengsss/Trident"),
    # the official code found contains only BoP.py (papers.md §14): no usable code link
    "holistic-robustness": _paper("analyses", "Toward a Holistic Evaluation of Robustness in CLIP Models",
                                  "2410.01534"),
    "clippings": _paper("text side", "Linking Representations with Multimodal Contrastive Learning", "2304.03464",
                        "dell-research-harvard/clippings"),
    "clip-in": _paper("training recipes", "CLIP-IN: Enhancing Fine-Grained Visual Understanding in CLIP via "
                      "Instruction Editing Data and Long Captions", "2508.02329"),
    "deltaspace": _paper("text side", "DeltaSpace: A Semantic-aligned Feature Space for Flexible Text-guided "
                         "Image Editing", "2310.08785", "Yueming6568/DeltaEdit"),
    "maft-plus": _paper("dense", "Collaborative Vision-Text Representation Optimizing for Open-Vocabulary "
                        "Segmentation", "2408.00744", "jiaosiyu1999/MAFT-Plus"),
    "medical-survey": _paper("analyses", "CLIP in Medical Imaging: A Survey", "2312.07353",
                             "zhaozh10/Awesome-CLIP-in-Medical-Imaging"),
    "clip-svd": _paper("adaptation", "Singular Value Few-shot Adaptation of Vision-Language Models", "2509.03740",
                       "HealthX-Lab/CLIP-SVD"),
    "clip-moe": _paper("training recipes", "CLIP-MoE: Towards Building Mixture of Experts for CLIP with "
                       "Diversified Multiplet Upcycling", "2409.19291", "OpenSparseLLMs/CLIP-MoE"),
    "un2clip": _paper("training recipes", "un^2CLIP: Improving CLIP's Visual Detail Capturing Ability via "
                      "Inverting unCLIP", "2505.24517", "LiYinqi/un2CLIP"),
    "ip-clip": _paper("analyses", "Vision-Language Model IP Protection via Prompt-based Learning", "2503.02393",
                      "LyWang12/IP-CLIP"),
    "rs-m-clip": _paper("text side", "Multilingual Vision-Language Pre-training for the Remote Sensing Domain",
                        "2410.23370", "DannielSilva/RS-M-CLIP"),
    "lightcap": _paper("text side", "Efficient Image Captioning for Edge Devices", "2212.08985"),
    "cloc": _paper("dense", "Contrastive Localized Language-Image Pre-Training", "2410.02746"),
    "m2-mix": _paper("training recipes", "Geodesic Multi-Modal Mixup for Robust Fine-Tuning", "2203.03897",
                     "changdaeoh/multimodal-mixup"),
    "llm2clip": _paper("text side", "LLM2CLIP: Powerful Language Model Unlock Richer Visual Representation",
                       "2411.04997", "microsoft/LLM2CLIP"),
    "classify-by-description": _paper("adaptation", "Visual Classification via Description from Large Language "
                                      "Models", "2210.07183", "sachit-menon/classify_by_description_release"),
    "quality-captions": _paper("training recipes", "CLIP with Quality Captions: A Strong Pretraining for Vision "
                               "Tasks", "2405.08911"),
    "laclip": _paper("training recipes", "Improving CLIP Training with Language Rewrites", "2305.20088",
                     "LijieFan/LaCLIP"),
    "caps-adapter": _paper("adaptation", "CapS-Adapter: Caption-based MultiModal Adapter in Zero-Shot "
                           "Classification", "2405.16591", "WLuLi/CapS-Adapter"),
    "comm": _paper("text side", "From CLIP to DINO: Visual Encoders Shout in Multi-modal Large Language Models",
                   "2310.08825", "YuchenLiu98/COMM"),
    "cloob": _paper("training recipes", "CLOOB: Modern Hopfield Networks with InfoLOOB Outperform CLIP",
                    "2110.11316", "ml-jku/cloob"),
    "coop": _paper("adaptation", "Learning to Prompt for Vision-Language Models", "2109.01134",
                   "KaiyangZhou/CoOp"),
    "cxr-fairness": _paper("analyses", "Fairness and Robustness of CLIP-Based Models for Chest X-rays",
                           "2507.21291", "TheoSourget/clip_cxr_fairness"),
    "farslip": _paper("dense", "FarSLIP: Discovering Effective CLIP Adaptation for Fine-Grained Remote Sensing "
                      "Understanding", "2511.14901", "NJU-LHRS/FarSLIP"),
    "schur-dissection": _paper("analyses", "Dissecting CLIP: Decomposition with a Schur Complement-based Approach",
                               "2412.18645", "aziksh-ospanov/CLIP-DISSECTION"),
    "dc-clip": _paper("text side", "A Progressive Framework of Vision-language Knowledge Distillation and "
                      "Alignment for Multilingual Scene", "2404.11249"),
    "perceptionclip": _paper("adaptation", "More Context, Less Distraction: Visual Classification by Inferring and "
                             "Conditioning on Contextual Attributes", "2308.01313", "umd-huang-lab/perceptionCLIP"),
}

_unknown = {slug: paper["family"] for slug, paper in PAPERS.items() if paper["family"] not in FAMILIES}
if _unknown:  # checked on import: a typo in a family would silently make a family look empty
    raise ValueError(f"papers with an unknown family: {_unknown}; families: {', '.join(FAMILIES)}")


def family_of(slug: str) -> str | None:
    """The paper's family, or None for a slug the registry does not know (a workbook page, a new notebook)."""
    return PAPERS.get(slug, {}).get("family")


def papers_in(family: str) -> list[str]:
    """The slugs of a family, in the registry's order."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; families: {', '.join(FAMILIES)}")
    return [slug for slug, paper in PAPERS.items() if paper["family"] == family]
