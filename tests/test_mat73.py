"""MATLAB v7.3 (HDF5) files: written here in MATLAB's layout (512-byte header, column-major data
stored with reversed dimensions, MATLAB_class attributes, #refs# for cells), read by load_mat."""

import numpy as np
import pytest
import scipy.sparse as sp

from ecgi_jax.geometry import load_mat

h5py = pytest.importorskip("h5py", reason="h5py reads MATLAB v7.3 files")


def _header(f):
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Tue Dec  1 00:00:00 2026 HDF5 schema 1.00 ."
    f.write(text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM")


def _put(group, name, value, refs):
    if isinstance(value, dict):
        g = group.create_group(name)
        g.attrs["MATLAB_class"] = np.bytes_("struct")
        for k, v in value.items():
            _put(g, k, v, refs)
    elif sp.issparse(value):
        c = sp.csc_matrix(value)
        g = group.create_group(name)
        g.attrs["MATLAB_class"] = np.bytes_("double")
        g.attrs["MATLAB_sparse"] = np.uint64(c.shape[0])
        g["data"], g["ir"], g["jc"] = c.data, c.indices.astype(np.uint64), c.indptr.astype(np.uint64)
    elif isinstance(value, str):
        ds = group.create_dataset(name, data=np.asarray([[ord(ch) for ch in value]], np.uint16).T)
        ds.attrs["MATLAB_class"] = np.bytes_("char")
    elif isinstance(value, tuple):  # a field of a 1 x k struct array: references, no MATLAB_class
        handles = []
        for i, item in enumerate(value):
            _put(refs, f"{name}_s{i}", item, refs)
            handles.append(refs[f"{name}_s{i}"].ref)
        group.create_dataset(name, data=np.asarray([handles], dtype=h5py.ref_dtype).T)
    elif isinstance(value, list):  # a 1 x k cell
        handles = []
        for i, item in enumerate(value):
            _put(refs, f"{name}_{i}", item, refs)
            handles.append(refs[f"{name}_{i}"].ref)
        ds = group.create_dataset(name, data=np.asarray([handles], dtype=h5py.ref_dtype).T)
        ds.attrs["MATLAB_class"] = np.bytes_("cell")
    elif np.iscomplexobj(value):  # MATLAB's complex: a compound of real and imag
        a = np.asarray(value).T
        c = np.empty(a.shape, dtype=[("real", np.float64), ("imag", np.float64)])
        c["real"], c["imag"] = a.real, a.imag
        group.create_dataset(name, data=c).attrs["MATLAB_class"] = np.bytes_("double")
    else:
        a = np.asarray(value)
        cls = {np.dtype(np.float64): "double", np.dtype(np.float32): "single", np.dtype(np.bool_): "logical",
               np.dtype(np.int32): "int32"}[a.dtype]
        if a.size == 0:
            ds = group.create_dataset(name, data=np.asarray(a.shape, np.uint64))  # MATLAB's size vector
            ds.attrs["MATLAB_empty"] = np.uint8(1)
        else:
            ds = group.create_dataset(name, data=(a.astype(np.uint8) if cls == "logical" else a).T)
        ds.attrs["MATLAB_class"] = np.bytes_(cls)


def _write_mat73(path, variables):
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        for name, value in variables.items():
            _put(f, name, value, refs)
    with open(path, "r+b") as f:
        _header(f)
    return path


def test_v73_variables_come_back_as_matlab_holds_them(tmp_path):
    rng = np.random.default_rng(0)
    lap = sp.random(6, 6, density=0.4, random_state=1, format="csc")
    Z = rng.standard_normal((4, 3))  # 4 leads x 3 nodes: an asymmetric shape catches a missed transpose
    path = _write_mat73(tmp_path / "study.mat", {
        "Z_BH": Z, "lap": lap, "name": "sock490", "mask": np.array([[True, False, True]]), "n": np.array([[7]], np.int32),
        "volts": rng.standard_normal((2, 5)).astype(np.float32), "none": np.zeros((0, 3)),
        "z": np.array([[1 + 2j, 3 - 1j]]),
        "geom": {"pts": rng.standard_normal((5, 3)), "fac": np.array([[1.0, 2.0, 3.0]])}, "runs": ["a", np.eye(2)],
        "beats": {"qrs": (np.ones((2, 2)), np.zeros((2, 2)))},
    })
    with pytest.raises(NotImplementedError):  # the file is what scipy calls v7.3
        __import__("scipy.io").io.loadmat(path)
    d = load_mat(path)
    np.testing.assert_array_equal(d["Z_BH"], Z)
    assert sp.issparse(d["lap"]) and d["lap"].shape == (6, 6)
    np.testing.assert_array_equal(d["lap"].toarray(), lap.toarray())
    assert d["name"] == "sock490"
    assert d["mask"].dtype == np.bool_ and d["mask"].tolist() == [[True, False, True]]
    assert d["n"].dtype == np.int32 and d["n"].tolist() == [[7]]
    assert d["volts"].dtype == np.float32 and d["volts"].shape == (2, 5)
    assert d["none"].shape == (0, 3)
    np.testing.assert_array_equal(d["z"], [[1 + 2j, 3 - 1j]])
    assert set(d["geom"]) == {"pts", "fac"} and d["geom"]["pts"].shape == (5, 3)
    assert d["runs"].shape == (1, 2) and d["runs"][0, 0] == "a"
    np.testing.assert_array_equal(d["runs"][0, 1], np.eye(2))
    assert d["beats"]["qrs"].shape == (1, 2) and d["beats"]["qrs"][0, 0].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert "#refs#" not in d


def test_v73_objects_and_damaged_files_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "table.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("t", data=np.zeros((1, 6), np.uint32)).attrs["MATLAB_class"] = np.bytes_("table")
    with open(path, "r+b") as f:
        _header(f)
    with pytest.raises(ValueError, match=r"table.mat:t: a MATLAB 'table' variable is not read"):
        load_mat(path)
    damaged = tmp_path / "damaged.mat"
    damaged.write_bytes(path.read_bytes()[:700])
    with pytest.raises(ValueError, match="Could not read MATLAB v7.3 file .*damaged.mat"):
        load_mat(damaged)
