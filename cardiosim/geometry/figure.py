"""Draw a torso with electrode layouts to PNG (matplotlib, imported only when called)."""

from __future__ import annotations

from pathlib import Path


from .layouts import ElectrodeLayout
from .mesh import TorsoMesh


def plot_torso(torso: TorsoMesh, layouts: list[ElectrodeLayout] | tuple = (), path=None, *, views=("front", "left")):
    """Front and side views of ``torso`` with each layout's electrodes (labelled), saved to ``path``.

    Parameters
    ----------
    torso : TorsoMesh
    layouts : sequence of ElectrodeLayout
        Drawn in order with distinct markers (e.g. standard, then displaced).
    path : str or Path, optional
        PNG file to write; the figure is returned either way.
    """
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    azim = {"front": -90, "left": 0, "back": 90, "right": 180}
    fig = plt.figure(figsize=(5 * len(views), 6))
    markers = ["o", "^", "s", "D", "v"]
    for k, view in enumerate(views):
        ax = fig.add_subplot(1, len(views), k + 1, projection="3d")
        # LPS -> display with anterior toward the viewer of the "front" view: plot (x, y, z).
        poly = Poly3DCollection(torso.triangles, facecolor=(0.85, 0.8, 0.75, 0.35), edgecolor=(0.4, 0.4, 0.4, 0.2),
                                linewidth=0.2)
        ax.add_collection3d(poly)
        for j, lay in enumerate(layouts):
            p = lay.positions
            ax.scatter(p[:, 0], p[:, 1], p[:, 2], marker=markers[j % len(markers)], s=25, label=lay.name,
                       depthshade=False)
            if j == 0:
                for name, q in zip(lay.electrodes, p):
                    ax.text(q[0], q[1], q[2], f" {name}", fontsize=7)
        lo, hi = torso.vertices.min(0), torso.vertices.max(0)
        c, r = (lo + hi) / 2, (hi - lo).max() / 2
        ax.set_xlim(c[0] - r, c[0] + r)
        ax.set_ylim(c[1] - r, c[1] + r)
        ax.set_zlim(c[2] - r, c[2] + r)
        ax.view_init(elev=10, azim=azim[view])
        ax.set_xlabel("x left (m)")
        ax.set_ylabel("y posterior (m)")
        ax.set_zlabel("z superior (m)")
        ax.set_title(f"{torso.name}: {view}")
        if layouts and k == 0:
            ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    if path is not None:
        fig.savefig(Path(path), dpi=120)
    return fig
