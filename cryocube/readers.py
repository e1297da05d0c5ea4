"""A leaner stackstac reader for assets already on the target grid.

stackstac's :class:`~stackstac.rio_reader.AutoParallelRioReader` always reads a
masked array, fills it and copies it: three full passes over every chunk even
when nothing has to be masked, rescaled or warped. For the common case of an
asset whose grid *is* the cube's grid (no ``WarpedVRT``), no per-dataset mask
band, and ``rescale=False`` (cryocube applies ``raster:bands`` scale/offset
itself), :class:`LeanRioReader` reads straight into the output dtype and sets
nodata pixels to the fill value in place. Every other case (reprojection,
mask bands, scaling) falls back to stackstac's own code, unchanged.

Measured with ``benchmarks/cube_ingest.py`` (20 scenes x 2 bands of 2048x2048
COGs, 2 threads): see the numbers in the issue notes and README.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rasterio.enums import MaskFlags
from rasterio.windows import Window
from stackstac.rio_reader import AutoParallelRioReader, ThreadLocalRioDataset

#: Mask flags under which a plain read plus a nodata comparison equals a masked read.
_PLAIN_MASKS = ({MaskFlags.all_valid}, {MaskFlags.nodata})


class LeanRioReader(AutoParallelRioReader):
    """:class:`~stackstac.rio_reader.AutoParallelRioReader` without the masked-array round trip.

    Used by :func:`cryocube.cube.build_cube` through ``stackstac.stack(reader=...)``.
    Pickles like its parent (its state is the parent's), so it works on
    ``dask.distributed`` workers.
    """

    def read(self, window: Window, **kwargs: Any) -> np.ndarray:
        """Read ``window`` (in the cube grid's pixels) as a 2-D array of ``self.dtype``."""
        dataset = self.dataset
        if not self._plain(dataset):
            return super().read(window, **kwargs)
        try:
            result = dataset.read(window=window, indexes=1, out_dtype=self.dtype, **kwargs)
        except Exception as error:  # same message as stackstac's reader
            raise RuntimeError(f"Error reading {window} from {self.url!r}: {error!r}") from error
        nodata = dataset.dataset.nodata
        if nodata is not None and not np.isnan(nodata):
            result[result == self.dtype.type(nodata)] = self.fill_value
        return result

    def _plain(self, dataset: Any) -> bool:
        """True when a plain read is exact: no warping, no scaling, no mask band, lossless cast to float."""
        if not isinstance(dataset, ThreadLocalRioDataset) or dataset._vrt_params is not None:
            return False
        if tuple(self.scale_offset) != (1, 0) or np.dtype(self.dtype).kind != "f":
            return False
        source = dataset.dataset
        return np.can_cast(source.dtypes[0], self.dtype, "safe") and set(source.mask_flag_enums[0]) in _PLAIN_MASKS
