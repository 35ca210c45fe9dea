"""Simplified render-only copies of MetaWorld's large visual meshes (level of detail).

Rendering under software GL (Mesa llvmpipe) is dominated by vertex processing, and nearly all of
a MetaWorld scene's ~68k mesh faces are the Sawyer robot's visual meshes, whose detail is far
below a pixel at 64-128 px. ``render_model(model, detail)`` returns a copy of the model for the
renderer only, in which every mesh with at least ``LOD_MIN_FACES`` faces is simplified so that,
together, they keep about ``detail`` of their faces. The physics model is never modified.

Simplification is vertex clustering: the vertices in each cell of a grid are merged into their
mean, collapsed triangles are dropped. One cell size serves every simplified mesh of the model
(found by bisection to hit ``detail``), so the geometric error is uniform (a vertex moves by at
most a cell's diagonal): a dense link loses most of its faces, a coarse one few. Quadric edge
collapse (fast-simplification / pyfqmr, same C++ core) was tried first and rejected: these meshes
are open (30-45 % of their edges are boundary edges) and it erodes open borders (the pedestal's
column vanished, the head got holes; preserving borders stalls at ~55 % of the faces), while
clustering has no borders to erode: at ~14.6k faces its 128 px frames differed from full detail
by 0.49 per pixel channel on average, quadric collapse's by 1.36. It needs only numpy.
"""

from __future__ import annotations

import copy
import hashlib

import mujoco
import numpy as np

LOD_MIN_FACES = 2000  # smaller meshes (task objects: handles, pegs, nets) are cheap and kept exact
_MIN_CELL = 1e-4  # metres: a grid this fine merges (almost) nothing
_BISECTIONS = 16

# (meshes' content digest, detail) -> (cell, [(vert, face, normal) per simplified mesh]): rollout
# workers create an env per task, and the Sawyer's meshes are the same in every task.
_CACHE: dict[tuple[str, float], tuple[float, list]] = {}


def check_mesh_detail(mesh_detail: object) -> float:
    if isinstance(mesh_detail, bool) or not isinstance(mesh_detail, (int, float, np.integer, np.floating)):
        raise ValueError(f"mesh_detail must be a number in (0, 1] (fraction of faces kept), got {mesh_detail!r}")
    if not 0.0 < float(mesh_detail) <= 1.0:  # also rejects NaN
        raise ValueError(
            f"mesh_detail must be in (0, 1] (fraction of the large meshes' faces kept; 1.0 = MetaWorld's "
            f"meshes unchanged), got {mesh_detail}"
        )
    return float(mesh_detail)


def _cluster(vert: np.ndarray, face: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge the vertices in each grid cell into their mean; drop collapsed and duplicate faces."""
    q = np.floor(vert / cell).astype(np.int64)
    q -= q.min(0)
    dims = q.max(0) + 1
    _, inv = np.unique((q[:, 0] * dims[1] + q[:, 1]) * dims[2] + q[:, 2], return_inverse=True)
    count = np.bincount(inv)
    centre = np.stack([np.bincount(inv, weights=vert[:, k]) for k in range(3)], 1) / count[:, None]
    f = inv.reshape(-1)[face]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]
    # Rotate each triangle to start at its smallest index (winding kept), then drop duplicates.
    f = np.take_along_axis(f, (f.argmin(1)[:, None] + np.arange(3)) % 3, 1)
    n = len(centre)
    _, first = np.unique((f[:, 0] * n + f[:, 1]) * n + f[:, 2], return_index=True)
    used, f = np.unique(f[np.sort(first)], return_inverse=True)  # keep only referenced vertices
    return centre[used], f.reshape(-1, 3)


def _vertex_normals(vert: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals. MuJoCo's renderer uses the face normal instead wherever they
    differ by more than ~37 degrees, so creases stay sharp."""
    fn = np.cross(vert[face[:, 1]] - vert[face[:, 0]], vert[face[:, 2]] - vert[face[:, 0]])
    normal = np.zeros_like(vert)
    for k in range(3):
        np.add.at(normal, face[:, k], fn)
    return normal / np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)


def _large_meshes(model: mujoco.MjModel) -> list[int]:
    # Skipped: textured meshes (their texcoords would need clustering too) and meshes with fewer
    # normals than vertices (one normal per kept vertex must fit in their normal block). MetaWorld
    # has neither.
    return [i for i in range(model.nmesh)
            if model.mesh_facenum[i] >= LOD_MIN_FACES and model.mesh_texcoordadr[i] < 0
            and model.mesh_normalnum[i] >= model.mesh_vertnum[i]]


def _mesh_arrays(model: mujoco.MjModel, i: int) -> tuple[np.ndarray, np.ndarray]:
    va, fa = model.mesh_vertadr[i], model.mesh_faceadr[i]
    vert = model.mesh_vert[va:va + model.mesh_vertnum[i]].astype(np.float64)
    face = model.mesh_face[fa:fa + model.mesh_facenum[i]].astype(np.int64)
    return vert, face


Mesh = tuple[np.ndarray, np.ndarray, np.ndarray]  # float32 vert (n, 3), int32 face (m, 3), float32 normal (n, 3)


def simplified_meshes(model: mujoco.MjModel, detail: float) -> tuple[float, dict[int, Mesh]]:
    """The cell size and ``{mesh id: (vert, face, normal)}`` of the large meshes at ``detail`` (cached)."""
    ids = _large_meshes(model)
    meshes = [_mesh_arrays(model, i) for i in ids]
    digest = hashlib.blake2b(digest_size=16)
    for vert, face in meshes:
        digest.update(vert.tobytes())
        digest.update(face.tobytes())
    key = (digest.hexdigest(), detail)
    if key not in _CACHE:
        target = detail * sum(len(face) for _, face in meshes)

        def faces_kept(cell: float) -> int:
            return sum(len(_cluster(vert, face, cell)[1]) for vert, face in meshes)

        # A cell that keeps the target to within 1 % (log-scale bisection; the face count falls,
        # though not strictly, as the cell grows).
        lo = _MIN_CELL
        hi = max([float(np.ptp(vert, 0).max()) for vert, _ in meshes] + [lo])
        for _ in range(_BISECTIONS):
            mid = float(np.sqrt(lo * hi))
            kept = faces_kept(mid)
            if kept >= target:
                lo = mid
                if kept <= 1.01 * target:
                    break
            else:
                hi = mid
        out = []
        for vert, face in meshes:
            v, f = _cluster(vert, face, lo)
            out.append((v.astype(np.float32), f.astype(np.int32), _vertex_normals(v, f).astype(np.float32)))
        _CACHE[key] = (lo, out)
    cell, out = _CACHE[key]
    return cell, dict(zip(ids, out))


def render_model(model: mujoco.MjModel, detail: float) -> mujoco.MjModel:
    """A copy of ``model`` for rendering only, with its large meshes simplified to ``detail``.

    Each simplified mesh is written into the front of its own blocks of the mesh arrays (it is
    never larger), so every address, and the structure that MjData follows (ngeom, nbody, ...),
    stays that of ``model``: the copy renders ``model``'s MjData. Never step it: its meshes no
    longer match the collision data (convex hulls) that still index them.
    """
    rmodel = copy.copy(model)  # a full, independent copy of the C struct (MjModel.__copy__)
    if check_mesh_detail(detail) == 1.0:
        return rmodel
    for i, (vert, face, normal) in simplified_meshes(model, detail)[1].items():
        va, na, fa = model.mesh_vertadr[i], model.mesh_normaladr[i], model.mesh_faceadr[i]
        nv, nf = len(vert), len(face)
        rmodel.mesh_vert[va:va + nv] = vert
        rmodel.mesh_normal[na:na + nv] = normal  # one normal per vertex ...
        rmodel.mesh_face[fa:fa + nf] = face
        rmodel.mesh_facenormal[fa:fa + nf] = face  # ... indexed like the vertices
        rmodel.mesh_vertnum[i] = rmodel.mesh_normalnum[i] = nv
        rmodel.mesh_facenum[i] = nf
        # The convex hull (drawn only with mjVIS_CONVEXHULL) indexes the original vertices.
        rmodel.mesh_graphadr[i] = -1
    return rmodel
