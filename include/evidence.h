/* The evidence the wizard records in a job's journal beyond the guard keys
 * of steps.h: the engine writes these keys, reports and history read them,
 * so the names live in one place. N in "firmware.N.*" counts from 1. */
#ifndef FLASHWISE_EVIDENCE_H
#define FLASHWISE_EVIDENCE_H

#define WIZ_KEY_OPERATOR_USER   "operator.user"
#define WIZ_KEY_OPERATOR_HOST   "operator.host"
#define WIZ_KEY_PROFILE_NAME    "profile.name"     /* identify */
#define WIZ_KEY_PROFILE_PATH    "profile.path"
#define WIZ_KEY_FIRMWARE_COUNT  "firmware.count"
/* firmware.N.path, firmware.N.addr (0x hex), firmware.N.size,
 * firmware.N.sha256, firmware.N.partition (identify) */
#define WIZ_KEY_IMAGE_SOURCE    "image.source"     /* verify-image: where the hash came from */
#define WIZ_KEY_IMAGE_SIGNATURE "image.signature"  /* "verified" or "none" */
#define WIZ_KEY_IMAGE_BYTES     "image.bytes"
#define WIZ_KEY_PORT_DESC       "port.description" /* prepare */
#define WIZ_KEY_CONDITIONS      "conditions.confirmed"
#define WIZ_KEY_DEVICE_CHIP     "device.chip"      /* bootloader */
#define WIZ_KEY_DEVICE_MAC      "device.mac"
#define WIZ_KEY_DEVICE_SIG      "device.signature"
#define WIZ_KEY_DEVICE_FLASH    "device.flash"
#define WIZ_KEY_DEVICE_LOADER   "device.loader"
#define WIZ_KEY_BACKUP_RANGES   "backup.ranges"    /* backup: "0x000000+0x100000 ..." */
#define WIZ_KEY_BACKUP_BYTES    "backup.bytes"
#define WIZ_KEY_EEPROM_PATH     "eeprom.path"      /* backup, where the loader reads EEPROM */
#define WIZ_KEY_EEPROM_SHA256   "eeprom.sha256"
#define WIZ_KEY_EEPROM_BYTES    "eeprom.bytes"
#define WIZ_KEY_EEPROM_NOTE     "eeprom.note"      /* why it was not backed up */
#define WIZ_KEY_FLASH_BYTES     "flash.bytes"      /* flash */
#define WIZ_KEY_FLASH_VERIFY    "flash.verify"     /* "md5 on chip: match" */
#define WIZ_KEY_BOOT_LOG        "boot.log"         /* reboot: file name in the job folder */
#define WIZ_KEY_BOOT_BANNER     "boot.banner"      /* "seen", "not configured" */
#define WIZ_KEY_BOOT_LINE       "boot.line"        /* the line that matched */
#define WIZ_KEY_REPORT_MD       "report.markdown"  /* document */
#define WIZ_KEY_REPORT_JSON     "report.json"

#endif
