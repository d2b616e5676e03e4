"""Pure functions on boxes, keypoints (17 COCO points) and tracks, shared by the fall, fight and weapon analyzers.

Plain ``math`` rather than numpy: 17 points per person is tiny, and listing plugins must not import numpy.
Image coordinates: x right, y down, in pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from campusguard.sdk import Box, Keypoint, Track

Keypoints = Sequence[Keypoint]

NOSE = 0
L_SHOULDER, R_SHOULDER = 5, 6
L_WRIST, R_WRIST = 9, 10
L_HIP, R_HIP = 11, 12
L_KNEE, R_KNEE = 13, 14
L_ANKLE, R_ANKLE = 15, 16
LIMBS = (L_WRIST, R_WRIST, L_ANKLE, R_ANKLE)
WRISTS = (L_WRIST, R_WRIST)


def valid(keypoints: Keypoints | None, index: int, min_score: float) -> bool:
    """Whether keypoint ``index`` exists and its score reaches ``min_score``."""
    return keypoints is not None and len(keypoints) > index and keypoints[index].score >= min_score


def point(keypoints: Keypoints | None, index: int, min_score: float) -> tuple[float, float] | None:
    if keypoints is None or not valid(keypoints, index, min_score):
        return None
    return (keypoints[index].x, keypoints[index].y)


def midpoint(keypoints: Keypoints | None, left: int, right: int, min_score: float) -> tuple[float, float] | None:
    """The middle of a left/right pair; one side alone when the other is hidden (side views)."""
    a, b = point(keypoints, left, min_score), point(keypoints, right, min_score)
    if a and b:
        return ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
    return a or b


def hip_point(keypoints: Keypoints | None, min_score: float) -> tuple[float, float] | None:
    return midpoint(keypoints, L_HIP, R_HIP, min_score)


def shoulder_point(keypoints: Keypoints | None, min_score: float) -> tuple[float, float] | None:
    return midpoint(keypoints, L_SHOULDER, R_SHOULDER, min_score)


def torso_angle(keypoints: Keypoints | None, min_score: float) -> float | None:
    """Degrees between the hip→shoulder vector and image-up: 0 upright, 90 lying across, 180 head down.

    None when the shoulders or hips are not visible. It is the angle in the image, not in the world:
    someone lying along the camera's line of sight still looks upright (foreshortened).
    """
    hips, shoulders = hip_point(keypoints, min_score), shoulder_point(keypoints, min_score)
    if hips is None or shoulders is None:
        return None
    dx, dy = shoulders[0] - hips[0], shoulders[1] - hips[1]
    if math.hypot(dx, dy) < 1e-6:
        return None
    return math.degrees(math.atan2(abs(dx), -dy))


def aspect_ratio(box: Box) -> float:
    """Width over height: about 0.3-0.5 for someone standing, above 1 for someone lying across the view."""
    return box.width / max(box.height, 1e-6)


def body_scale(box: Box) -> float:
    """A person's size in pixels whatever their posture: the longer side of the box."""
    return max(box.width, box.height, 1e-6)


def body_centre(keypoints: Keypoints | None, box: Box, min_score: float) -> tuple[float, float]:
    """Hip midpoint when visible (it moves with the body, not the limbs), else the box centre."""
    return hip_point(keypoints, min_score) or box.center


def limb_speed(
    before: tuple[float, Box, Keypoints | None],
    after: tuple[float, Box, Keypoints | None],
    min_score: float,
    limbs: Iterable[int] = LIMBS,
) -> float | None:
    """The fastest limb (wrist or ankle) between two samples ``(time, box, keypoints)``, in body sizes per second.

    Limbs are measured relative to the body centre, so walking or running past does not count as
    limb motion; only the limb's own swing does. None when no limb is visible in both samples.
    """
    (t0, box0, kp0), (t1, box1, kp1) = before, after
    dt = t1 - t0
    if dt <= 0:
        return None
    c0, c1 = body_centre(kp0, box0, min_score), body_centre(kp1, box1, min_score)
    scale = (body_scale(box0) + body_scale(box1)) / 2
    best: float | None = None
    for index in limbs:
        p0, p1 = point(kp0, index, min_score), point(kp1, index, min_score)
        if p0 is None or p1 is None:
            continue
        moved = math.hypot((p1[0] - c1[0]) - (p0[0] - c0[0]), (p1[1] - c1[1]) - (p0[1] - c0[1]))
        speed = moved / dt / scale
        best = speed if best is None else max(best, speed)
    return best


def pose_shift(
    before: tuple[Box, Keypoints | None], after: tuple[Box, Keypoints | None], min_score: float, scale: float
) -> float:
    """How far a body moved between two samples, relative to ``scale``: the median keypoint shift when
    keypoints are visible in both (robust to one jittering point), else the box's largest edge shift."""
    (box0, kp0), (box1, kp1) = before, after
    shifts = []
    if kp0 is not None and kp1 is not None:
        for a, b in zip(kp0, kp1, strict=False):
            if a.score >= min_score and b.score >= min_score:
                shifts.append(math.hypot(b.x - a.x, b.y - a.y))
    if len(shifts) >= 4:
        shifts.sort()
        return shifts[len(shifts) // 2] / max(scale, 1e-6)
    edges = (box1.x1 - box0.x1, box1.y1 - box0.y1, box1.x2 - box0.x2, box1.y2 - box0.y2)
    return max(abs(e) for e in edges) / max(scale, 1e-6)


def centre_distance(a: Box, b: Box) -> float:
    (ax, ay), (bx, by) = a.center, b.center
    return math.hypot(ax - bx, ay - by)


def distance_to_box(x: float, y: float, box: Box) -> float:
    """0 inside the box, else the distance to its nearest edge."""
    dx = max(box.x1 - x, 0.0, x - box.x2)
    dy = max(box.y1 - y, 0.0, y - box.y2)
    return math.hypot(dx, dy)


def reach_distance(target: Box, person: Track, min_score: float) -> float:
    """How far ``target``'s centre is from ``person``, relative to the person's size: the nearer of their
    box and their wrists (a held object sits in the hand, which may stick out of the box)."""
    x, y = target.center
    nearest = distance_to_box(x, y, person.box)
    for index in WRISTS:
        wrist = point(person.keypoints, index, min_score)
        if wrist is not None:
            nearest = min(nearest, math.hypot(x - wrist[0], y - wrist[1]))
    return nearest / body_scale(person.box)


def nearest_person(
    target: Box, people: Iterable[Track], max_distance: float, min_score: float
) -> tuple[Track, float] | None:
    """The person track nearest to ``target`` (see :func:`reach_distance`) within ``max_distance`` body sizes."""
    best: tuple[Track, float] | None = None
    for person in people:
        distance = reach_distance(target, person, min_score)
        if distance <= max_distance and (best is None or distance < best[1]):
            best = (person, distance)
    return best
