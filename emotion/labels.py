"""The seven FER2013 emotion classes, in one fixed order, and how other sources name them.

Our class order is alphabetical, which is also the order of the Kaggle folder layout
(``train/angry``, ``train/disgust``, ...), so a folder listing and ``CLASSES`` agree. The
original ``fer2013.csv`` uses a different order; ``FER_CSV_ORDER`` translates it.
"""

from __future__ import annotations

CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
NUM_CLASSES: int = len(CLASSES)

# fer2013.csv's "emotion" column: 0=Angry 1=Disgust 2=Fear 3=Happy 4=Sad 5=Surprise 6=Neutral.
# FER_CSV_ORDER[csv_index] is our index, so a whole column converts with
# ``np.asarray(FER_CSV_ORDER)[csv_labels]``.
FER_CSV_ORDER: tuple[int, ...] = (
    CLASSES.index("angry"),  # 0 Angry
    CLASSES.index("disgust"),  # 1 Disgust
    CLASSES.index("fear"),  # 2 Fear
    CLASSES.index("happy"),  # 3 Happy
    CLASSES.index("sad"),  # 4 Sad
    CLASSES.index("surprise"),  # 5 Surprise
    CLASSES.index("neutral"),  # 6 Neutral
)

# Names seen in FER2013 re-uploads and sibling datasets (CK+, RAF-DB, AffectNet folder dumps).
# Keys are lower-case; ``class_index`` also strips spaces, "-" and "_" before looking up.
SYNONYMS: dict[str, str] = {
    "angry": "angry",
    "anger": "angry",
    "mad": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "disgusting": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "joyful": "happy",
    "neutral": "neutral",
    "neutrality": "neutral",
    "sad": "sad",
    "sadness": "sad",
    "unhappy": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
}


def class_index(name: str) -> int:
    """Return our class index (0..6) for a folder or label name.

    Matching ignores case, surrounding whitespace and "-"/"_"/" ", and accepts the synonyms
    in ``SYNONYMS`` (e.g. "Anger", "HAPPINESS", "surprised" -> 6).

    Raises ValueError naming the input and the accepted classes when nothing matches.
    """
    key = "".join(ch for ch in name.strip().lower() if ch not in " -_")
    canonical = SYNONYMS.get(key)
    if canonical is None:
        raise ValueError(
            f"unknown emotion class name {name!r}; expected one of {', '.join(CLASSES)} "
            f"(or a synonym such as anger, fearful, happiness, sadness, surprised)"
        )
    return CLASSES.index(canonical)
