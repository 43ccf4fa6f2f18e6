"""The paper's numbers the tests check against, written here from SPEC.md and the paper, independently of
``dsd_tools.paper`` (a wrong entry there must fail a test, not agree with itself)."""

# Tables 3 and 7: trainable parameters in millions, (backbone, with DSD)
PARAMS_M = {
    "hippocampus_vnet": (45.602, 45.605),
    "hippocampus_unetr": (92.624, 92.628),
    "hippocampus_nnunet": (5.6870, 5.6890),
    "mmwhs_unetr_small": (92.784, 92.797),
    "mmwhs_unetr": (101.787, 101.804),
    "mmwhs_nnunet_small": (5.6870, 5.6950),
    "mmwhs_nnunet": (16.664, 16.672),
}

# Tables 1-3: mean Dice (%), backbone -> backbone + DSD
MEAN_DICE = {
    "mmwhs_unetr_dsd": (78.24, 80.94), "mmwhs_nnunet_dsd": (83.55, 86.49),
    "brats_unetr_light_dsd": (68.4, 72.0), "brats_unetr_dsd": (68.9, 76.6), "brats_nnunet_dsd": (74.2, 76.9),
    "brats_swinunetr_dsd": (72.4, 76.5),
    "hippocampus_vnet_dsd": (83.82, 85.45), "hippocampus_unetr_dsd": (84.32, 85.62),
    "hippocampus_nnunet_dsd": (86.16, 87.10),
}

# MMWHS raw label values of classes 1..7 (MYO, LA, LV, RA, RV, AA, PA) and the stray value mapped to background
MMWHS_RAW = (205, 420, 500, 550, 600, 820, 850)
MMWHS_STRAY = 421

# The three datasets as SPEC.md describes them, written here (not imported from the package under test).
MMWHS = {"name": "mmwhs", "layout": "mmwhs", "channel_names": ["CT"],
         "class_names": ["background", "myocardium", "left_atrium", "left_ventricle", "right_atrium",
                         "right_ventricle", "ascending_aorta", "pulmonary_artery"],
         "raw_label_values": list(MMWHS_RAW), "background_values": [MMWHS_STRAY], "target_spacing": [1.5, 1.5, 2.0],
         "split": {"kind": "blocks", "num_folds": 5}}
BRATS = {"name": "brats", "layout": "msd", "channel_names": ["FLAIR", "T1w", "t1gd", "T2w"],
         "class_names": ["background", "edema", "non_enhancing_tumor", "enhancing_tumor"],
         "split": {"kind": "holdout", "reference_cases": 484, "test": 24, "validation": 72, "seed": 0}}
HIPPO = {"name": "hippocampus", "layout": "msd", "channel_names": ["MRI"],
         "class_names": ["background", "anterior", "posterior"],
         "split": {"kind": "holdout", "reference_cases": 260, "test": 60, "validation": 30, "seed": 0}}
SPECS = {"mmwhs": MMWHS, "brats": BRATS, "hippocampus": HIPPO}
